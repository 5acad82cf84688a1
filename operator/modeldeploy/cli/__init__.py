"""kubectl-modeldeploy: manual rollout control that never touches the spec (GitOps-safe)."""
