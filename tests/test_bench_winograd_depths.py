"""bench/winograd_depths.py: --winograd_min_depths sets net/winograd's thresholds."""

from absl import flags
import pytest
import tensorflow as tf

from bench import winograd_depths
from net import winograd


def _parsed(*argv):
  flag_values = flags.FlagValues()
  winograd_depths.define_flag(flag_values)
  flag_values(['bench'] + list(argv))
  return flag_values


def test_the_default_is_the_modules_and_a_value_sets_both_thresholds(monkeypatch):
  monkeypatch.setattr(winograd, 'MIN_IN_DEPTH', winograd.MIN_IN_DEPTH)
  monkeypatch.setattr(winograd, 'MIN_OUT_DEPTH', winograd.MIN_OUT_DEPTH)
  assert _parsed().winograd_min_depths == ['64', '128']
  winograd_depths.apply(_parsed('--winograd_min_depths=128,256'))
  assert (winograd.MIN_IN_DEPTH, winograd.MIN_OUT_DEPTH) == (128, 256)
  # The thresholds decide which layers take Winograd: 128 -> 128 no longer does.
  assert not winograd.applies([3, 3, 128, 128], (38, 38), 1, 1, tf.float32)
  assert winograd.applies([3, 3, 128, 256], (38, 38), 1, 1, tf.float32)


@pytest.mark.parametrize('value', ['64', '64,x', '0,128', '64,128,256'])
def test_a_bad_value_names_the_flag(monkeypatch, value):
  monkeypatch.setattr(winograd, 'MIN_IN_DEPTH', winograd.MIN_IN_DEPTH)
  with pytest.raises(ValueError, match=r'--winograd_min_depths must be two positive integers '
                     r'IN,OUT, got %r' % value):
    winograd_depths.apply(_parsed('--winograd_min_depths=' + value))
  assert winograd.MIN_IN_DEPTH == 64
