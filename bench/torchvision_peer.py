"""The peer a user would pick instead: torchvision's ssd300_vgg16, timed as this project's
bench/forward.py, bench/inference.py and bench/train_step.py time SSD300 (same batch sizes,
same thread count), so the two can be compared on one machine.

Needs PyTorch and torchvision, which this project does not depend on; in a separate venv:

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tv/bin/python bench/torchvision_peer.py [--batch_sizes 1 8] [--threads 2]

Imports nothing of this project (argparse, not absl). Random weights (weights=None,
weights_backbone=None), 21 classes, channels_last, torch.inference_mode for inference:
  - forward: backbone + heads on a 300 x 300 batch (no transform, no post-processing), as
    bench/forward.py's network-only figure;
  - detection: model.eval() on a list of 500 x 375 float images: torchvision's resize to 300 and
    normalisation, the network, box decoding, score threshold 0.01 and per-class NMS 0.45
    (torchvision's defaults, the same as the reference); with random weights every class is
    above 0.01, the worst case for NMS, as in bench/inference.py (which also decodes JPEGs);
  - training: model.train() with two boxes per image, torchvision's loss (hard negative mining
    3:1), SGD momentum 0.9, lr 1e-3 (bench/train_step.py's synthetic row: a cached batch).
Prints a table; the last line is one JSON object.
"""

import argparse
import json
import platform
import time

import torch
import torchvision


# /proc/cpuinfo keys -> summary keys ('cpu family' 25 with model 17 is Zen 4; 26 is Zen 5).
NUMBER_KEYS = {'cpu family': 'cpu_family', 'model': 'cpu_model_number'}


def cpu_description():
  """CPU model, family/model numbers and whether it has AVX-512 and AVX512_BF16."""
  info = {'cpu_model': platform.processor() or platform.machine()}
  try:
    with open('/proc/cpuinfo', encoding='utf-8', errors='replace') as f:
      text = f.read()
  except OSError:
    return info
  for line in text.splitlines():
    key, _, value = line.partition(':')
    key = key.strip()
    if key == 'model name':
      info['cpu_model'] = value.strip()
    elif key in NUMBER_KEYS and NUMBER_KEYS[key] not in info:
      info[NUMBER_KEYS[key]] = int(value)
    elif key == 'flags':
      flags = set(value.split())
      info['cpu_avx512'] = 'avx512f' in flags
      info['cpu_avx512_bf16'] = 'avx512_bf16' in flags
      break
  return info


def timed(function, warmup, iterations):
  """Seconds per call after warm-up calls."""
  for _ in range(warmup):
    function()
  start = time.perf_counter()
  for _ in range(iterations):
    function()
  return (time.perf_counter() - start) / iterations


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_sizes', type=int, nargs='+', default=[1, 8])
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--iterations', type=int, default=5)
  parser.add_argument('--train_batch_size', type=int, default=8)
  parser.add_argument('--train_steps', type=int, default=4)
  parser.add_argument('--skip_training', action='store_true')
  parser.add_argument('--bfloat16', action='store_true',
                      help='Run inference under torch.autocast(cpu, bfloat16) (training stays '
                      'float32), to compare with this project\'s --compute_dtype=bfloat16.')
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None,
                                                    num_classes=21)
  model = model.to(memory_format=torch.channels_last)
  parameters = sum(p.numel() for p in model.parameters())
  summary = {'torch': torch.__version__, 'torchvision': torchvision.__version__,
             'threads': args.threads, 'parameters': parameters}
  rows = []
  model.eval()
  precision = torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.bfloat16)
  summary['inference_dtype'] = 'bfloat16' if args.bfloat16 else 'float32'
  with torch.inference_mode(), precision:
    for batch_size in args.batch_sizes:
      images = torch.rand(batch_size, 3, 300, 300).to(memory_format=torch.channels_last)

      def forward(images=images):
        features = list(model.backbone(images).values())
        model.head(features)

      seconds = timed(forward, args.warmup, args.iterations)
      rows.append(('forward', batch_size, batch_size / seconds, seconds))
      summary['forward_images_per_sec_b%d' % batch_size] = round(batch_size / seconds, 3)
    for batch_size in args.batch_sizes:
      images = [torch.rand(3, 375, 500) for _ in range(batch_size)]
      seconds = timed(lambda images=images: model(images), args.warmup, args.iterations)
      rows.append(('detection', batch_size, batch_size / seconds, seconds))
      summary['detection_images_per_sec_b%d' % batch_size] = round(batch_size / seconds, 3)
  if not args.skip_training:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    batch_size = args.train_batch_size
    images = [torch.rand(3, 300, 300) for _ in range(batch_size)]
    targets = [{'boxes': torch.tensor([[30., 40., 150., 200.], [120., 60., 280., 290.]]),
                'labels': torch.tensor([3, 15])} for _ in range(batch_size)]

    def step():
      losses = model(images, targets)
      optimizer.zero_grad()
      sum(losses.values()).backward()
      optimizer.step()

    seconds = timed(step, 1, args.train_steps)
    rows.append(('training', batch_size, batch_size / seconds, seconds))
    summary['train_images_per_sec_b%d' % batch_size] = round(batch_size / seconds, 3)
  print('torchvision %s ssd300_vgg16, %d parameters, %d threads, channels_last, inference %s'
        % (torchvision.__version__, parameters, args.threads, summary['inference_dtype']))
  print('%-10s %6s %10s %14s' % ('figure', 'batch', 'images/s', 'seconds/batch'))
  for name, batch_size, rate, seconds in rows:
    print('%-10s %6d %10.2f %14.3f' % (name, batch_size, rate, seconds))
  summary['machine'] = cpu_description()
  print('machine: %s' % json.dumps(summary['machine']))
  print(json.dumps(summary))


if __name__ == '__main__':
  main()
