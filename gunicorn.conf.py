"""gunicorn's settings for every way the web process is started (it reads ./gunicorn.conf.py).

The access log leaves out query strings and the Referer: a URL's query can carry a secret (an
emailed order link's token, on its one request), and access logs are kept and shipped widely.
docs/security.md."""

# host, user (Basic auth username only), time, "METHOD /path HTTP/x", status, bytes, duration, agent
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
