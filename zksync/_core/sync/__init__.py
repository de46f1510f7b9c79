"""The sync service's logic: presence ring, departures and aborts, states, topics, exchange.

Layout under ``/zksync-sync/<namespace>``::

    instances/p-<seq>     ephemeral, data = instance id: who is alive (each watches its predecessor)
    joined/<id>           persistent: who ever joined (to name the missing on a timeout)
    left/<id>             persistent: written by the instance that saw <id>'s presence vanish
    states/<state>/e-<seq>        one per signal_entry, data = instance id; seq + 1 is its number
    signalled/<state>/<id>.<guid> made in the same transaction as the entry: who signalled
    aborted/<state>               data = reason
    topics/<topic>/m-<guid>-<seq> data = JSON payload
    exchange/<key>/<id>           data = JSON value
"""

from .service import SyncCore, make_core
from .topics import END, Subscription

__all__ = ["END", "Subscription", "SyncCore", "make_core"]
