"""Which quick recipe `make demo` trains on this CPU (no TensorFlow import).

The demo trains for a fixed 12 minutes (configs/quick.flags, net/time_budget.py), so what it
reaches depends on how many images the CPU trains in that time. Measured in `make demo`
(README, "Results of make demo"):

- CPUs with native bfloat16 (AVX512_BF16 or AMX) train the thin VGG16 of configs/quick.flags
  fast enough to reach its curve's flat part: mean mAP 0.832 over 3 seeds on a Zen 5.
- Elsewhere (float32; AVX2-only CPUs) it sees about 9,200 images in 12 minutes and scores 0.202
  (mean of 3 seeds, Zen 3), while MobileNet V1 at half width with a stride-8 source
  (configs/quick_mobilenet.flags) trains 2.8x more images in the same time and scores 0.653.

    python -m utility.demo_recipe            # prints the flagfile (the Makefile's DEMO_FLAGS)
    python -m utility.demo_recipe --why      # and the reason
"""

import sys

from utility import hardware

VGG_RECIPE = 'configs/quick.flags'
MOBILENET_RECIPE = 'configs/quick_mobilenet.flags'


def choose(cpu_flags):
  """(flagfile, reason) of the demo's recipe for a CPU with `cpu_flags` (a set of names)."""
  if hardware.cpu_has_fast_bfloat16(cpu_flags):
    return VGG_RECIPE, ('this CPU computes bfloat16 natively, where the thin VGG16 learns the '
                        'most in the 12 minutes')
  return MOBILENET_RECIPE, ('this CPU has no native bfloat16 (AVX512_BF16/AMX), so the demo '
                            'trains MobileNet V1 0.5 with a stride-8 source, which trains 2.8x '
                            'more images a second here than the thin VGG16')


def main(argv):
  flagfile, reason = choose(hardware.cpu_model_and_flags()[1])
  print('%s (%s)' % (flagfile, reason) if '--why' in argv[1:] else flagfile)


if __name__ == '__main__':
  main(sys.argv)
