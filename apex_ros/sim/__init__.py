"""The simulated robot: the state layout, models, observations, batched rollouts, the stepped
environment and closed-loop episodes (MPC or a policy driving it)."""
