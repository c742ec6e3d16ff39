"""The program `pulumi up` runs at the project's root: the bounded context and environment named by the stack."""

from ode.program import main

main()
