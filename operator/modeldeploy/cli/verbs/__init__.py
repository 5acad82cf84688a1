"""One module per verb of ``kubectl modeldeploy`` (as Argo Rollouts' plugin has one per command)."""
