"""Video level: one row per input video, keyed by ``video_id``."""

import pyarrow as pa

from video_miner.tables import Level

VIDEO = Level("video", ("video_id",), (pa.field("video_id", pa.string(), nullable=False),))
