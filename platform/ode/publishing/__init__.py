"""What ode tells other tooling: lifecycle events on an EventBridge bus (:mod:`~ode.publishing.lifecycle_events`)
and stack outputs in SSM Parameter Store (:mod:`~ode.publishing.ssm_outputs`). Neither ever fails a deploy; boto3 is
imported only when an environment asks for one of them."""
