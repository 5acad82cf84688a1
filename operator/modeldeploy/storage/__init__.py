"""The storage initializer: the init container's program (``modeldeploy-storage-initializer``).

It downloads a model from ``s3://``, ``gs://`` or ``https://`` and lays it out for the runtime
(Triton ``<model dir>/<version>/``, TorchServe ``<model>.mar``), atomically and safely. Nothing else
in the operator imports this package: it runs in its own image, not in the operator.

Modules: :mod:`.uri` (what the URI names), :mod:`.errors` (failures and their one-line messages,
credential redaction), :mod:`.safepath` (keys and archive members that must stay inside the
destination), :mod:`.layout` (what goes where for each runtime), :mod:`.archive` (safe extraction),
:mod:`.transfer` (streaming with retries, resume and sha256), :mod:`.backends` (one module per store),
:mod:`.stage` (the source brought into the work directory, laid out), :mod:`.place` (atomic placement,
completion marker, termination message), :mod:`.cli`.
"""
