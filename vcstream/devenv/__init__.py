"""Real services on this machine, without Docker: a KRaft Kafka broker from Maven jars,
govmomi's vcsim and a PostgreSQL server. Used by `vcstream dev up` and by the tests.

`deploy/local/install.sh` puts the binaries in the cache folder; these classes only run
them, each on ports chosen by the caller or free ones, with their data in a work dir.
"""

from vcstream.devenv.kafka import LocalKafka, ScramUser
from vcstream.devenv.postgres import LocalPostgres
from vcstream.devenv.vcsim import LocalVcsim

__all__ = ["LocalKafka", "LocalPostgres", "LocalVcsim", "ScramUser"]
