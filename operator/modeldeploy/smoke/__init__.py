"""``spec.smokeTest``: what to send to a new revision's pod (per runtime), how to judge the answer
(pure), and the small HTTP shell that sends it (:mod:`modeldeploy.smoke.client`)."""
