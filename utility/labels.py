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

# MS COCO 2014/2017 detection: (category id, name) of the 80 categories of the official
# instances_*.json files. Ids run 1..90 with gaps; labels are the contiguous 1..80 in id order,
# and results files are written with the ids (``category_ids``).
_COCO_CATEGORIES = (
    (1, 'person'), (2, 'bicycle'), (3, 'car'), (4, 'motorcycle'), (5, 'airplane'), (6, 'bus'),
    (7, 'train'), (8, 'truck'), (9, 'boat'), (10, 'traffic light'), (11, 'fire hydrant'),
    (13, 'stop sign'), (14, 'parking meter'), (15, 'bench'), (16, 'bird'), (17, 'cat'),
    (18, 'dog'), (19, 'horse'), (20, 'sheep'), (21, 'cow'), (22, 'elephant'), (23, 'bear'),
    (24, 'zebra'), (25, 'giraffe'), (27, 'backpack'), (28, 'umbrella'), (31, 'handbag'),
    (32, 'tie'), (33, 'suitcase'), (34, 'frisbee'), (35, 'skis'), (36, 'snowboard'),
    (37, 'sports ball'), (38, 'kite'), (39, 'baseball bat'), (40, 'baseball glove'),
    (41, 'skateboard'), (42, 'surfboard'), (43, 'tennis racket'), (44, 'bottle'),
    (46, 'wine glass'), (47, 'cup'), (48, 'fork'), (49, 'knife'), (50, 'spoon'), (51, 'bowl'),
    (52, 'banana'), (53, 'apple'), (54, 'sandwich'), (55, 'orange'), (56, 'broccoli'),
    (57, 'carrot'), (58, 'hot dog'), (59, 'pizza'), (60, 'donut'), (61, 'cake'), (62, 'chair'),
    (63, 'couch'), (64, 'potted plant'), (65, 'bed'), (67, 'dining table'), (70, 'toilet'),
    (72, 'tv'), (73, 'laptop'), (74, 'mouse'), (75, 'remote'), (76, 'keyboard'),
    (77, 'cell phone'), (78, 'microwave'), (79, 'oven'), (80, 'toaster'), (81, 'sink'),
    (82, 'refrigerator'), (84, 'book'), (85, 'clock'), (86, 'vase'), (87, 'scissors'),
    (88, 'teddy bear'), (89, 'hair drier'), (90, 'toothbrush'),
)
COCO_CLASSES = tuple(name for _, name in _COCO_CATEGORIES)
COCO_CATEGORY_IDS = tuple(category_id for category_id, _ in _COCO_CATEGORIES)
COCO_NUM_CLASSES = len(COCO_CLASSES) + 1  # 81, background included


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


def default_category_ids(class_names):
  """The dataset category id of each label when none was recorded: COCO's ids for the 80 COCO
  classes, else the label itself (1..N)."""
  if tuple(class_names) == COCO_CLASSES:
    return COCO_CATEGORY_IDS
  return tuple(range(1, len(class_names) + 1))


def check_category_ids(category_ids, class_names):
  """Raises ValueError unless category_ids is empty or one distinct int per class."""
  if not category_ids:
    return
  if len(category_ids) != len(class_names):
    raise ValueError('--category_ids has %d ids for %d classes; give one per class name, in '
                     'label order.' % (len(category_ids), len(class_names)))
  if len(set(category_ids)) != len(category_ids):
    raise ValueError('--category_ids repeats an id: %s.' % ','.join(map(str, category_ids)))


def load_class_names(spec):
  """Resolves a class-name spec: '' or 'voc' -> VOC_CLASSES; 'coco' -> COCO_CLASSES; a path ->
  names in that file (a .json file: its "class_names" list, e.g. a conversion summary);
  anything else -> a comma-separated list."""
  import json
  import os
  if not spec or spec.lower() == 'voc':
    return VOC_CLASSES
  if spec.lower() == 'coco':
    return COCO_CLASSES
  if os.path.isfile(spec) and spec.lower().endswith('.json'):
    with open(spec, encoding='utf-8') as f:
      names = json.load(f).get('class_names')
    if not names:
      raise ValueError('%s has no "class_names" list.' % spec)
    return parse_class_names('\n'.join(names))
  if os.path.isfile(spec):
    with open(spec, encoding='utf-8') as f:
      return parse_class_names(f.read())
  return parse_class_names(spec)
