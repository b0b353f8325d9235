"""--winograd_min_depths for the bench scripts: which layers net/winograd.py computes.

The bench scripts that build SSD graphs define the flag with define_flag() and call apply()
before building one, to measure net/winograd.MIN_IN_DEPTH and MIN_OUT_DEPTH on this machine.
"""

from absl import flags

from net import winograd


def define_flag(flag_values=flags.FLAGS):
  """Defines --winograd_min_depths=IN,OUT (default: net/winograd.py's)."""
  flags.DEFINE_list('winograd_min_depths', [str(winograd.MIN_IN_DEPTH),
                                            str(winograd.MIN_OUT_DEPTH)],
                    'Winograd only for 3x3 layers of at least these input,output channels (to '
                    'measure net/winograd.MIN_IN_DEPTH and MIN_OUT_DEPTH).',
                    flag_values=flag_values)


def apply(flag_values=flags.FLAGS):
  """Sets net/winograd's thresholds from --winograd_min_depths; ValueError naming the flag."""
  values = flag_values.winograd_min_depths
  try:
    depths = [int(value) for value in values]
  except ValueError:
    depths = []
  if len(depths) != 2 or min(depths) < 1:
    raise ValueError('--winograd_min_depths must be two positive integers IN,OUT, got %r.'
                     % ','.join(values))
  winograd.MIN_IN_DEPTH, winograd.MIN_OUT_DEPTH = depths
