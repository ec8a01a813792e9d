"""gunicorn settings for a Samleng app server:
``gunicorn -c gunicorn.conf.py samleng.service.wsgi:app``.

Command-line options override these (the tests bind free ports that way). The app reads its
own settings from SAMLENG_* variables (see README.md); nothing here names a client.
"""

import os

# Loopback only: nginx on the same machine is the only client. In a scale-out where nginx
# runs elsewhere, bind the private address instead (SAMLENG_BIND), never a public one.
bind = [os.environ.get("SAMLENG_BIND", "127.0.0.1:8000")]

# One process per core: Argon2 (about 20-60 ms of one core per signature) is the bound on
# signing, and the app runs at most SAMLENG_ARGON2_CONCURRENCY computations per process
# (1 with this layout) on threads of its own; a signature waits up to SAMLENG_ARGON2_WAIT
# for one, then gets 503 + Retry-After.
workers = int(os.environ.get("SAMLENG_WORKERS", len(os.sched_getaffinity(0))))
# Threads, so that while Argon2 holds a process's slot its other requests (pages, counts,
# the 503 answers themselves) are served instead of queued behind it.
worker_class = "gthread"
threads = 16

# No access log: it would write the time and the path of every request (and, without a
# proxy in front, the client's address). Errors go to stderr (the journal) without request
# bodies; "warning" keeps gunicorn's own failure messages, whose only address is that of
# the direct peer, nginx on loopback.
accesslog = None
errorlog = "-"
loglevel = "warning"
capture_output = False

# Only nginx on loopback may set the scheme through X-Forwarded-Proto; the app's ProxyFix
# (SAMLENG_TRUSTED_PROXIES=1) and circuit trust (SAMLENG_CIRCUIT_PROXIES) do the rest.
forwarded_allow_ips = "127.0.0.1,::1"
proxy_allow_ips = "127.0.0.1,::1"

# Requests are small (a sign form is under 16 KiB; nginx refuses more before this).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# A worker silent for this long is killed and replaced; a graceful stop (SIGTERM, deploy)
# lets requests in flight finish first.
timeout = 30
graceful_timeout = 20
keepalive = 30

# Recycle workers now and then (memory fragmentation from Argon2's 19 MiB buffers), at
# different moments so that they never all restart together.
max_requests = 20000
max_requests_jitter = 2000

# The heartbeat file on shared memory, never on a disk (and inside the unit's sandbox).
worker_tmp_dir = "/dev/shm"  # noqa: S108 - mkstemp heartbeat (own name, 0600), no data
# gunicorn's control socket is not used, and would otherwise be created in $HOME.
control_socket_disable = True
proc_name = "samleng-web"
