"""Class labels: the one place that says what each class index means.

Index 0 is always the background class. Object classes follow, starting at 1, in the
order of the class list. For Pascal VOC that is the 20 names in alphabetical order
(aeroplane=1 ... tvmonitor=20), so ``num_classes`` (which counts the background) is 21.

A custom dataset supplies its own list of names (``--class_names`` or a labels file with
one name per line); the same rules apply.
"""

BACKGROUND_LABEL = 0
BACKGROUND_NAME = 'background'

VOC_CLASSES = (
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
    'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor',
)
VOC_NUM_CLASSES = len(VOC_CLASSES) + 1  # 21, background included


def name_to_label(class_names=VOC_CLASSES):
  """Returns {class name: label}, labels 1..len(class_names); 0 is the background."""
  return {name: index + 1 for index, name in enumerate(class_names)}


def label_to_name(class_names=VOC_CLASSES):
  """Returns {label: class name} including 0 -> 'background'."""
  mapping = {BACKGROUND_LABEL: BACKGROUND_NAME}
  mapping.update({index + 1: name for index, name in enumerate(class_names)})
  return mapping


def parse_class_names(text):
  """Parses class names from a comma-separated string or the contents of a labels file.

  Args:
    text: 'cat,dog' or 'cat\\ndog\\n' (blank lines, surrounding spaces and a trailing CR
      are ignored).

  Returns:
    A tuple of names in the given order.

  Raises:
    ValueError: if the list is empty, repeats a name, or names the background.
  """
  separators = text.replace('\r', '\n').replace(',', '\n')
  names = tuple(name.strip() for name in separators.split('\n') if name.strip())
  if not names:
    raise ValueError('The class name list is empty; give at least one class name.')
  duplicates = sorted({name for name in names if names.count(name) > 1})
  if duplicates:
    raise ValueError('Class names must be unique; repeated: %s.' % ', '.join(duplicates))
  if BACKGROUND_NAME in names:
    raise ValueError("'%s' is reserved for label 0; leave it out of the class names."
                     % BACKGROUND_NAME)
  return names


def load_class_names(spec):
  """Resolves a class-name spec: '' or 'voc' -> VOC_CLASSES; a path -> names in that file;
  anything else -> a comma-separated list."""
  import os
  if not spec or spec.lower() == 'voc':
    return VOC_CLASSES
  if os.path.isfile(spec):
    with open(spec, encoding='utf-8') as f:
      return parse_class_names(f.read())
  return parse_class_names(spec)
