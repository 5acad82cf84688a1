"""modeldeploy: progressive delivery of ML models on Kubernetes."""
