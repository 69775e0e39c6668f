"""Real services on this machine, without Docker: a KRaft Kafka broker from Maven jars,
govmomi's vcsim and a PostgreSQL server. Used by `./dev run` and by the tests.

`deploy/local/install.sh` puts the binaries in the cache folder; these classes only run
them, each on ports chosen by the caller or free ones, with their data in a work dir.
"""

from devenv.kafka import LocalKafka, ScramUser
from devenv.postgres import LocalPostgres
from devenv.vcsim import LocalVcsim

__all__ = ["LocalKafka", "LocalPostgres", "LocalVcsim", "ScramUser"]
