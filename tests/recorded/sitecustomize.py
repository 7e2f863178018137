"""Test-only: replaces yt-dlp's network layer at the YoutubeDL boundary for searches.

Loaded through PYTHONPATH by tests that run the workflow with ``search.queries``:
``ytsearchN:<query>`` returns the recorded result (yt-dlp's own dict shape) from the
JSON file named by VIDEO_MINER_RECORDED_SEARCH; every other call goes to yt-dlp.
"""

import json
import os

if os.environ.get("VIDEO_MINER_RECORDED_SEARCH"):
    import yt_dlp

    _real_extract_info = yt_dlp.YoutubeDL.extract_info

    def extract_info(self, url, download=True, *args, **kwargs):
        if isinstance(url, str) and url.startswith("ytsearch"):
            with open(os.environ["VIDEO_MINER_RECORDED_SEARCH"], encoding="utf-8") as fh:
                recorded = json.load(fh)
            count, query = url.removeprefix("ytsearch").split(":", 1)
            result = dict(recorded[query])
            result["entries"] = result["entries"][: int(count)]
            return result
        return _real_extract_info(self, url, download, *args, **kwargs)

    yt_dlp.YoutubeDL.extract_info = extract_info
