"""`vcstream gateway --config FILE`: CloudEvents in over HTTP, the stream out over HTTP."""

from __future__ import annotations

import logging
import signal
import sys

import typer

from cli.common import ConfigOption, load_or_exit, start_observability
from vcstream.exits import EXIT_CONFIG, EXIT_RUNTIME

app = typer.Typer()
log = logging.getLogger("vcstream.gateway")


@app.command("gateway")
def gateway(config: ConfigOption = None) -> None:
    """Take CloudEvents on the webhook path (VEBA's) into `gateway.topic`; serve the
    stream to HTTP clients under /api/v1 (range, events, watch).

    Example:  vcstream gateway --config deploy/local/vcstream.yaml

    SIGTERM or Ctrl-C stops taking requests, answers those in flight and flushes.
    """
    settings = load_or_exit(config)
    import asyncio  # not at the top: every command imports this module, few run a loop

    from gateway.server import serve
    from vcstream.kafka import KafkaLoginRejected
    from vcstream.observability import Health

    health = Health()
    server = start_observability(settings, health)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, health, stop)

    try:
        asyncio.run(main())
    except KafkaLoginRejected as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    except OSError as exc:  # the port is taken, or the TLS files cannot be read
        print(f"gateway failed to start: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_RUNTIME) from None
    except Exception as exc:
        log.exception("gateway failed: %s", exc)
        raise typer.Exit(EXIT_RUNTIME) from None
    finally:
        if server is not None:
            server.stop()
