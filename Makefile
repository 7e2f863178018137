# Two set-up commands for a fresh machine (Python 3.11+): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build on the test machines; on a GPU machine the same pin installs the CUDA build.
TORCH_PIN ?= torch==2.13.0
CORES ?= 2

.PHONY: demo test install lint bench dryrun-bench clean-demo

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "video-miner needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalled when pyproject.toml changes. torch first and pinned, so nothing pulls a
# different build; torchvision is deliberately absent.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_PIN)"
	$(BIN)/pip install --quiet -e ".[models,upload,test,slurm,storage]"
	# The moondream backend's client without kestrel, its ~700 MB local engine (unused here).
	$(BIN)/pip install --quiet --no-deps "moondream==2.6.1"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/snakemake --configfile config/demo.yaml --cores $(CORES)
	@echo
	@echo "Demo finished. Outputs:"
	@echo "  results/pipeline_result.json   run summary: videos ok/failed, what each stage kept, timings"
	@echo "  results/status.tsv             one row per video with its status and reason"
	@echo "  results/extract/<shard>/       extracted frames; one table per stage and shard:"
	@echo "  results/<stage>/<shard>.parquet  download, extract, filter (demo models: random weights), embed, detect"
	@echo "  results/dedup/unique_frames.parquet  near-duplicates removed within and across videos"
	@echo "  results/splits/                train/val/test by video groups (a re-upload goes with its original)"
	@echo "  results/detections/annotations.json  COCO detections (OpenCV Haar cascades: face, cat face)"
	@echo "  results/detections/annotations_<split>.json  COCO per split (train, val, test)"
	@echo "  results/detections/visualizations/   frames with their boxes drawn"
	@echo "  results/dataset/<split>/       imagefolder dataset with its splits (images + metadata.parquet)"
	@echo "  results/export/yolo/           YOLO (data.yaml, images/<split>/, labels/<split>/)"
	@echo "  results/export/label_studio/   Label Studio import (tasks.json: boxes as predictions; config.xml)"
	@echo "  results/export/webdataset/<split>/  the frames as WebDataset tars for training (jpg + json per frame)"
	@echo "  manifest.json in each export   run id, config, models, counts, sha256 of every file:"
	@echo "                                 .venv/bin/video-miner verify-manifest results/dataset"
	@echo "  results/shots/<shard>.parquet  shots found by TransNetV2 (real weights): one row per clip"
	@echo "  results/clips/metadata.jsonl   the clip export (and .parquet): kept, reasons, scores (flash, text_area, motion, aesthetic), files/<video>/<clip>.mp4"
	@echo "  results/export/clips/          the kept clips as a WebDataset (mp4 + json per clip)"
	@echo "  results/calibration/quantiles.json  clip score quantiles on a sample, suggested thresholds"
	@echo "  results/report/clip_strip.jpg  a kept and a dropped clip with their scores"
	@$(BIN)/python -c 'import json; from video_miner.splits import describe; \
		s = json.load(open("results/pipeline_result.json"))["splits"]; \
		print("  splits:", describe(s)); [print("    note:", n) for n in s["notes"]]'
	@echo "  results/upload/demo_folder.done upload marker (files, sizes, sha256) for demo-upload/"
	@echo "  report: .venv/bin/snakemake --configfile config/demo.yaml --report report.html"
	@echo "  results/download/<shard>/      the videos"
	@echo "  logs/                          one log per job"

# Two workers, a test file each (its module fixtures, e.g. one workflow run, stay in one
# worker): the suite's runs wait on subprocesses, the scheduler and timeouts about half the
# time, so two overlap well even on two cores.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -ra --durations=15

lint: install
	$(BIN)/snakemake --lint --configfile config/demo.yaml
	$(BIN)/snakefmt --check Snakefile rules/

# Every performance goal against its baseline; rewrites the generated part of BENCHMARKS.md.
# BENCH_ARGS=--full adds 100k- and 1M-URL dry runs and 1M-frame dedup (30+ minutes on 2 cores).
bench: install
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

dryrun-bench: install
	$(BIN)/python benchmarks/dryrun.py

clean-demo:
	rm -rf results logs resources/demo .snakemake
