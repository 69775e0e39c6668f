"""The HTTP gateway: CloudEvents in on VEBA's webhook, the stream out over HTTP watches."""
