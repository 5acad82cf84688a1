"""The imperative shell around the pure rollout decisions: reading the world (:mod:`.observe`) and
carrying out what was decided (:mod:`.execute`). :mod:`modeldeploy.reconcile` runs one pass."""
