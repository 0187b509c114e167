"""The embedded broker: kombu's filesystem transport with atomic message writes.

kombu's own ``_put`` creates the message file in the queue folder and then writes it; a worker
listing the folder in between moves away an empty file and the message is lost (seen here as
``JSONDecodeError`` in the worker under a burst). Here the file is written in a staging folder
on the same filesystem and renamed into the queue, so a consumer only ever sees whole messages.
"""

import os
import uuid
from pathlib import Path
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        staging = Path(self.transport_options.get("staging_folder") or Path(self.data_folder_out).parent / "staging")
        staging.mkdir(parents=True, exist_ok=True)
        staged = staging / name
        staged.write_bytes(str_to_bytes(dumps(payload)))
        os.replace(staged, Path(self.data_folder_out) / name)


class Transport(filesystem.Transport):
    Channel = Channel


# ``filesystem://`` everywhere in REX (worker, beat, web, Flower) means this transport.
TRANSPORT_ALIASES["filesystem"] = "rex_project.broker:Transport"
