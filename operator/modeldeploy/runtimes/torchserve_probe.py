"""TorchServe's readiness check: an exec probe that asks the server whether the model's workers are up.

Why not an ``httpGet`` probe (all verified against TorchServe 0.12's source and a real server):

* With token authorization on (the default) every API, ``/ping`` included, answers 400 without the
  bearer key, and the keys are generated at startup into ``key_file.json`` in the server's working
  directory (``user.dir``): only a process inside the container can read them.
* ``/ping`` is not "the model is loaded": it answers ``Healthy`` while the workers are still loading
  and while a dead worker is being restarted (``WorkerThread.isHealthy`` is true until a worker has
  failed for ``maxRetryTimeoutInSec``, 5 minutes), and also when no model got registered at all.

So the probe runs ``python3`` (the image's, stdlib only, Python 3.9 compatible) with :data:`SCRIPT`:
it reads the listeners' ports from ``config.properties`` and the keys from the key file, sends
``GET /ping`` to the inference port with the inference key (the serving port answers, the key
clients use works) and ``GET /models/<model>`` to the management API on 127.0.0.1 with the
management key, and succeeds only when the model is registered and at least ``minWorkers`` of its
workers are ``READY`` (loaded). It prints one line and never a key.

Keys expire (``token_expiration_min``, default 60 minutes). A key that expires within
:data:`RENEW_MARGIN_S` is renewed first with the never-expiring API key (``GET /token?type=...`` on
the management API, TorchServe's own rotation call, which rewrites the key file), so readiness does
not drop after an hour and the file keeps holding keys that work. With ``disableAuth`` the key file
argument is ``-`` and no key is sent.
"""

from __future__ import annotations

import textwrap

#: key-file argument meaning "token authorization is off: send no key".
NO_KEY_FILE = "-"
#: seconds each HTTP request of the probe may take (at most four requests per run).
REQUEST_TIMEOUT_S = 2
#: a key that expires within this many seconds is renewed before use.
RENEW_MARGIN_S = 5

SCRIPT = textwrap.dedent(
    f"""\
    import calendar, json, socket, sys, time
    config_file, key_file, model = sys.argv[1:4]
    def fail(message):
        print(message)
        sys.exit(1)
    def port(prop):
        with open(config_file) as f:
            for line in f:
                name, _, value = line.strip().partition("=")
                if name == prop:
                    return int(value.rsplit(":", 1)[1])
        fail("no %s in %s" % (prop, config_file))
    def load_keys():
        try:
            with open(key_file) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            fail("key file not readable yet: " + type(e).__name__)
    def get(port, path, key):
        request = "GET %s HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n" % path
        if key:
            request += "Authorization: Bearer %s\\r\\n" % key
        data, length = b"", None
        try:
            with socket.create_connection(("127.0.0.1", port), timeout={REQUEST_TIMEOUT_S}) as conn:
                conn.sendall((request + "\\r\\n").encode())
                while True:
                    head, end, body = data.partition(b"\\r\\n\\r\\n")
                    if end and length is None:
                        for line in head.split(b"\\r\\n")[1:]:
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value)
                    if length is not None and len(body) >= length:
                        break
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except (OSError, ValueError) as e:
            fail("GET %s on port %d: %s" % (path.split("?")[0], port, type(e).__name__))
        status = data.split(b" ", 2)[1:2]
        return (int(status[0]) if status and status[0].isdigit() else 0), data.partition(b"\\r\\n\\r\\n")[2]
    def bearer(kind):
        if key_file == "{NO_KEY_FILE}":
            return None
        keys = load_keys()
        s = keys[kind]["expiration time"]  # Java's Instant: 2024-02-16T21:12:24.801167Z (UTC)
        fields = (s[:4], s[5:7], s[8:10], s[11:13], s[14:16], s[17:19])
        expires = calendar.timegm(tuple(int(f) for f in fields) + (0, 0, 0))
        if expires - time.time() < {RENEW_MARGIN_S}:
            status, _ = get(management_port, "/token?type=" + kind, keys["API"]["key"])
            if status != 200:
                fail("renewing the expiring %s key: HTTP %d" % (kind, status))
            keys = load_keys()
        return keys[kind]["key"]
    inference_port, management_port = port("inference_address"), port("management_address")
    status, _ = get(inference_port, "/ping", bearer("inference"))
    if status != 200:
        fail("/ping: HTTP %d" % status)
    status, body = get(management_port, "/models/" + model, bearer("management"))
    if status != 200:
        fail("model %s: HTTP %d" % (model, status))
    described = json.loads(body)[0]
    ready = sum(1 for w in described["workers"] if w.get("status") == "READY")
    wanted = max(described["minWorkers"], 1)
    print("model %s: %d/%d workers READY" % (model, ready, wanted))
    sys.exit(0 if ready >= wanted else 1)
    """
)


def probe_command(config_file: str, key_file: str | None, model: str) -> list[str]:
    """The exec probe's command line; ``key_file`` None: token authorization is off.

    The ports come from ``config_file`` (the server's ``config.properties``: ``inference_address`` and
    ``management_address``), so the probe always asks the listeners the server really opened.

    ``-I`` (isolated: no PYTHON* variables, no user site) and ``-S`` (no ``site`` import) keep the
    probe independent of the server's Python environment and cheap to start.
    """
    return [
        "python3",
        "-I",
        "-S",
        "-c",
        SCRIPT,
        config_file,
        key_file or NO_KEY_FILE,
        model,
    ]
