# Two commands: `make demo` (the main job on a synthetic VOC dataset) and `make test`.
# Both build .venv from the pinned requirements.txt first; with GPU=1 they build .venv-gpu
# from requirements-gpu.txt (TensorFlow with CUDA, Linux x86-64) instead.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
GPU ?=
REQUIREMENTS := $(if $(GPU),requirements-gpu.txt,requirements.txt)
VENV := $(if $(GPU),.venv-gpu,.venv)
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Demo settings (override on the command line, e.g. `make demo DEMO_SEED=1`).
DEMO_DIR ?= demo_output
DEMO_SEED ?= 0
DEMO_TRAINVAL ?= 3000
DEMO_TEST ?= 300
# The quick recipe: on a CPU MobileNet V1 0.5 with a stride-8 source, which learned more in the
# 12 minutes than the thin VGG16 of configs/quick.flags on both CPU kinds measured (mean mAP over
# 3 seeds 0.813 against 0.712 on an AVX-512 Zen 4, 0.653 against 0.202 on an AVX2 Zen 3;
# README, "Results of make demo"); with GPU=1 the thin VGG16.
DEMO_FLAGS ?= $(if $(GPU),configs/quick.flags,configs/quick_mobilenet.flags)
DEMO_TRAIN_FLAGS ?=
DEMO_DATA_FLAGS ?=
DEMO_DATA := $(DEMO_DIR)/voc
DEMO_RECORDS := $(DEMO_DIR)/records
DEMO_MODEL := $(DEMO_DIR)/model
# `make demo-coco`: the same synthetic images and quick model through the COCO path.
COCO_DEMO_DIR ?= demo_coco_output
COCO_DEMO_DATA := $(COCO_DEMO_DIR)/data/coco

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: all venv test demo demo-coco check-platforms clean clean-demo

all: test

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS) requirements-base.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (found %s); run make PYTHON=/path/to/python3.11" % sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r $(REQUIREMENTS)
	@touch $@

# Do the pinned requirements resolve on Linux x86-64 / aarch64, macOS arm64 and Windows?
# (pip's dry run per platform; needs the package index, installs nothing.)
check-platforms: $(STAMP)
	$(VPY) -m utility.check_requirements --requirements=requirements.txt
	$(VPY) -m utility.check_requirements --requirements=requirements-gpu.txt --platforms=linux-x86_64

test: $(STAMP)
	$(VPY) -m pytest -q tests

# oneDNN: each script decides it for its job and this CPU before TensorFlow runs
# (utility/onednn.py): on AVX2-only x86 CPUs it turns oneDNN on for the demo's training (the
# quick model trains 1.67x faster with it) and its inference (1.4-1.7x); README, "Which CPU".
# TF_ENABLE_ONEDNN_OPTS=0 or =1 in the environment overrides it.

demo: $(STAMP)
	@echo "==> [1/6] Generating a synthetic VOC-format dataset in $(DEMO_DATA) (seed $(DEMO_SEED))"
	$(VPY) dataset/make_synthetic_voc.py --output_dir=$(DEMO_DATA) --num_trainval=$(DEMO_TRAINVAL) \
	    --num_test=$(DEMO_TEST) --seed=$(DEMO_SEED) $(DEMO_DATA_FLAGS)
	@echo "==> [2/6] Converting it to TFRecords in $(DEMO_RECORDS)"
	$(VPY) dataset/convert_tfrecords.py --dataset_directory=$(DEMO_DATA) \
	    --output_directory=$(DEMO_RECORDS) --train_splits=VOC2007:trainval \
	    --val_splits=VOC2007:test --train_shards=4 --val_shards=2
	@echo "==> [3/6] Training the quick SSD ($(DEMO_FLAGS)) into $(DEMO_MODEL)"
	$(VPY) train_ssd.py --flagfile=$(DEMO_FLAGS) --data_dir=$(DEMO_RECORDS) \
	    --model_dir=$(DEMO_MODEL) --tf_random_seed=$$(( $(DEMO_SEED) + 1 )) $(DEMO_TRAIN_FLAGS)
	@echo "==> [4/6] Evaluating on the test split (VOC07 11-point AP)"
	$(VPY) eval_ssd.py --data_dir=$(DEMO_RECORDS) --model_dir=$(DEMO_MODEL) \
	    --det_dir=$(DEMO_DIR)/detections --json_output=$(DEMO_DIR)/map.json --batch_size=16
	@echo "==> [5/6] Exporting a SavedModel to $(DEMO_DIR)/saved_model"
	$(VPY) export_ssd.py --model_dir=$(DEMO_MODEL) --export_dir=$(DEMO_DIR)/saved_model --overwrite
	@echo "==> [6/6] Drawing detections on 8 test images into $(DEMO_DIR)/drawn"
	@rm -rf $(DEMO_DIR)/sample_images && mkdir -p $(DEMO_DIR)/sample_images
	@head -n 8 $(DEMO_DATA)/VOCdevkit/VOC2007/ImageSets/Main/test.txt | \
	    while read id; do cp $(DEMO_DATA)/VOCdevkit/VOC2007/JPEGImages/$$id.jpg $(DEMO_DIR)/sample_images/; done
	$(VPY) simple_ssd_demo.py --saved_model=$(DEMO_DIR)/saved_model \
	    --input=$(DEMO_DIR)/sample_images --output=$(DEMO_DIR)/drawn --score_threshold=0.5
	@echo
	@echo "Done. Outputs in $(DEMO_DIR)/:"
	@echo "  voc/VOCdevkit     synthetic dataset (VOC layout)    records/      TFRecord shards"
	@echo "  model/            checkpoints, ssd_config.json, TensorBoard events"
	@echo "  detections/       devkit result files              map.json      mAP and AP per class"
	@echo "  saved_model/      SavedModel (encoded image bytes in, detections out)"
	@echo "  drawn/            test images with detections drawn"
	@echo "TensorBoard: $(VPY) -m tensorboard.main --logdir=$(DEMO_MODEL)"

# The COCO path end to end: COCO-format data -> convert (one run per split) -> train (COCO AP
# during training) -> COCOeval from the records -> re-scored against the instances file.
demo-coco: $(STAMP)
	@echo "==> [1/4] Generating the synthetic dataset in COCO format in $(COCO_DEMO_DATA) (seed $(DEMO_SEED))"
	$(VPY) dataset/make_synthetic_voc.py --format=coco --output_dir=$(COCO_DEMO_DIR)/data \
	    --num_trainval=$(DEMO_TRAINVAL) --num_test=$(DEMO_TEST) --seed=$(DEMO_SEED) $(DEMO_DATA_FLAGS)
	@echo "==> [2/4] Converting train and val to TFRecords in $(COCO_DEMO_DIR)/records"
	for split in train val; do \
	  $(VPY) dataset/convert_tfrecords.py --format=coco --split_name=$$split \
	      --annotations=$(COCO_DEMO_DATA)/annotations/instances_$$split.json \
	      --images=$(COCO_DEMO_DATA)/images/$$split --output_directory=$(COCO_DEMO_DIR)/records \
	      --train_shards=2 || exit 1; \
	done
	@echo "==> [3/4] Training the quick SSD ($(DEMO_FLAGS)) into $(COCO_DEMO_DIR)/model"
	$(VPY) train_ssd.py --flagfile=$(DEMO_FLAGS) --eval_metric=coco \
	    --data_dir=$(COCO_DEMO_DIR)/records --model_dir=$(COCO_DEMO_DIR)/model \
	    --tf_random_seed=$$(( $(DEMO_SEED) + 1 )) $(DEMO_TRAIN_FLAGS)
	@echo "==> [4/4] COCOeval on val, then coco_eval.py on the results file"
	$(VPY) eval_ssd.py --data_dir=$(COCO_DEMO_DIR)/records --model_dir=$(COCO_DEMO_DIR)/model \
	    --metric=coco --det_dir=$(COCO_DEMO_DIR)/detections \
	    --json_output=$(COCO_DEMO_DIR)/coco_ap.json --batch_size=16
	$(VPY) coco_eval.py --annotations=$(COCO_DEMO_DATA)/annotations/instances_val.json \
	    --results=$(COCO_DEMO_DIR)/detections/coco_results.json

clean-demo:
	rm -rf $(DEMO_DIR) $(COCO_DEMO_DIR)

clean: clean-demo
	rm -rf .venv .venv-gpu
