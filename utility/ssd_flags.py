"""absl flags for every SSDConfig field, and the flags -> SSDConfig conversion.

One flag per config field, named like the field (help text from the field), with a few names
kept from the well-known TF SSD port (``--train_image_size``, ``--num_preprocessing_threads``).
Lists are comma separated (``--decay_boundaries=80000,100000``). Recipes live in flag files:
``python train_ssd.py --flagfile=configs/ssd300_voc0712.flags --data_dir=... --model_dir=...``.
"""

import dataclasses
import typing

from absl import flags

from utility import config as config_lib
from utility import file_io
from utility import labels

FLAG_NAMES = config_lib.FLAG_NAMES
_DATA_FORMAT_ALIASES = config_lib.DATA_FORMAT_ALIASES
flag_name = config_lib.flag_name
override_model = config_lib.override_model


def _element_type(field):
  args = typing.get_args(field.type)
  return args[0] if args else str


def define_config_flags(sections=tuple(config_lib.SECTIONS), flag_values=flags.FLAGS):
  """Defines one flag per field of the given SSDConfig sections (once per flag_values)."""
  for section in sections:
    for field in dataclasses.fields(config_lib.SECTIONS[section]):
      name = flag_name(field.name)
      if name in flag_values:
        continue
      help_text = field.metadata.get('help', '')
      if field.name == 'class_names':
        flags.DEFINE_string(
            name, '', "Class names: 'voc', 'coco', a comma-separated list, a file with one "
            "name per line or a .json file with a \"class_names\" list; '' = read from "
            "<data_dir>/conversion_summary.json (else VOC).",
            flag_values=flag_values)
      elif typing.get_origin(field.type) is tuple:
        flags.DEFINE_list(name, [str(v) for v in field.default], help_text,
                          flag_values=flag_values)
      elif field.type is bool:
        flags.DEFINE_bool(name, field.default, help_text, flag_values=flag_values)
      elif field.type is int:
        flags.DEFINE_integer(name, field.default, help_text, flag_values=flag_values)
      elif field.type is float:
        flags.DEFINE_float(name, field.default, help_text, flag_values=flag_values)
      else:
        flags.DEFINE_string(name, field.default, help_text, flag_values=flag_values)


def _flag_value(field, raw):
  if typing.get_origin(field.type) is tuple:
    element = _element_type(field)
    try:
      return tuple(element(v) for v in raw)
    except ValueError:
      raise ValueError('--%s=%s: every item must be a %s.'
                       % (flag_name(field.name), ','.join(raw), element.__name__)) from None
  if field.name == 'data_format':
    return _DATA_FORMAT_ALIASES.get(raw.lower(), raw)
  return raw


def class_names_from_data_dir(data_dir):
  """Class names recorded by the converter in <data_dir>/conversion_summary.json, or None."""
  names = file_io.read_conversion_summary(data_dir).get('class_names')
  return tuple(names) if names else None


def category_ids_from_data_dir(data_dir, class_names):
  """The converter's category ids (COCO conversions record them) when its class names are
  class_names, else ()."""
  summary = file_io.read_conversion_summary(data_dir)
  if tuple(summary.get('class_names') or ()) != tuple(class_names):
    return ()
  return tuple(int(i) for i in summary.get('category_ids') or ())


def resolve_class_names(spec, data_dir=None):
  """--class_names -> tuple: explicit spec, else the data_dir's summary, else VOC."""
  if spec:
    return labels.load_class_names(spec)
  return class_names_from_data_dir(data_dir) or labels.VOC_CLASSES


def config_from_flags(flag_values=flags.FLAGS, base=None, data_dir=None,
                      sections=tuple(config_lib.SECTIONS)):
  """Builds an SSDConfig from flags.

  Args:
    flag_values: parsed absl FlagValues holding the config flags.
    base: optional SSDConfig (e.g. read from model_dir); then only flags given explicitly on
      the command line or in a flag file override it.
    data_dir: where to look for the converter's class names when --class_names is empty.
    sections: which sections flags may set.

  Raises:
    ValueError: for a malformed list flag.
  """
  only_present = base is not None
  base = base or config_lib.SSDConfig()
  updates = {}
  for section in sections:
    changes = {}
    for field in dataclasses.fields(config_lib.SECTIONS[section]):
      name = flag_name(field.name)
      if name not in flag_values or (only_present and not flag_values[name].present):
        continue
      if field.name == 'class_names':
        changes[field.name] = resolve_class_names(flag_values[name].value, data_dir)
      else:
        changes[field.name] = _flag_value(field, flag_values[name].value)
    if 'class_names' in changes and not flag_values[flag_name('category_ids')].present:
      changes['category_ids'] = category_ids_from_data_dir(data_dir, changes['class_names'])
    updates[section] = dataclasses.replace(getattr(base, section), **changes)
  return dataclasses.replace(base, **updates)


def inference_config(model_dir, flag_values=flags.FLAGS):
  """The trained settings of model_dir with the detection-output flags given on the command line
  (--score_threshold, --nms_iou_threshold, ...) applied on top."""
  return config_from_flags(flag_values, base=config_lib.load(model_dir), sections=('postprocess',))
