"""The hub models a configuration names (``video-miner fetch-models``, the manifests).

Models that ship in packages (OpenCV's cascades, RapidOCR, TransNetV2), local folders,
files (the aesthetic head) and hosted APIs (moondream, dinox, the captions API) are not
hub downloads and are left out.
"""

from __future__ import annotations


def config_models(config: dict) -> list[str]:
    """The hub ids of every model the (filled) configuration's enabled stages load, in
    stage order, each once; local folders are left out."""
    from video_miner.ids import is_local_model
    from video_miner.stages import API_BACKENDS, enabled_stages

    enabled = {s.name for s in enabled_stages(config)}
    models: list[str | None] = []
    if "filter" in enabled or "verify" in enabled:
        models.append(config["filter"]["model"])
    if "embed" in enabled and config["dedup"]["backend"] == "model":
        dedup = config["dedup"]["model"]
        models.append(config["filter"]["model"] if dedup == "filter" else dedup)
    detection = config["detection"]
    if "detect" in enabled and detection["backend"] not in (*API_BACKENDS, "opencv"):
        from video_miner.detection import DETECTORS

        models.append(detection.get("model") or DETECTORS.get(detection["backend"]).default_model)
    if "segment" in enabled:
        models.append(config["segment"]["model"])
    if "captions" in enabled and config["captions"]["backend"] == "florence2":
        models.append(config["captions"]["florence2"]["model"])
    if "audio" in enabled:
        models.append(config["audio"]["model"])
    if "aesthetic" in enabled:
        models.append(config["aesthetic"]["model"])
    return [m for m in dict.fromkeys(models) if m and not is_local_model(m)]
