"""A detector for encoded images: the serving graph in a session, from a model_dir or a SavedModel.

Both sources run the same graph (net/export.py ``build_serving_graph``): from a model_dir it is
built in-process and the checkpoint restored; from an exported SavedModel it is loaded with the
TF1 loader and its 'serving_default' signature is run. ``detect`` returns the signature's
outputs as numpy arrays either way, so callers (the demo) have one code path.
"""

import tensorflow as tf

from net import export
from utility import checkpoint as checkpoint_lib
from utility import config as config_lib

tf1 = tf.compat.v1


class Detector:
  """Runs detection on batches of encoded images; the graph is built once."""

  def __init__(self, session, encoded_images, outputs):
    """Prefer from_model_dir / from_saved_model.

    Args:
      session: a tf.compat.v1.Session owning the graph.
      encoded_images: the string [batch] input tensor of that graph.
      outputs: dict of export.OUTPUT_KEYS -> tensors of that graph.
    """
    self._session = session
    self._encoded_images = encoded_images
    self._outputs = outputs

  @classmethod
  def from_model_dir(cls, model_dir, checkpoint_path='', data_format=''):
    """Builds the serving graph of <model_dir>/ssd_config.json and restores a checkpoint.

    Args:
      model_dir: folder written by train_ssd.py.
      checkpoint_path: a specific checkpoint; default the latest in model_dir.
      data_format: '' (NHWC, CPU) or the layout to run.

    Raises:
      FileNotFoundError / ValueError: no ssd_config.json, no checkpoint, or a checkpoint that
        does not hold the model (one sentence each).
    """
    ssd_config = export.serving_config(config_lib.load(model_dir), data_format)
    path = checkpoint_lib.latest_checkpoint(model_dir, checkpoint_path)
    graph = tf.Graph()
    with graph.as_default():
      encoded_images = tf1.placeholder(tf.string, [None], name=export.INPUT_KEY)
      outputs = export.build_serving_graph(encoded_images, ssd_config)
      session = tf1.Session(graph=graph)
      export.restore_variables(session, path)
    graph.finalize()
    return cls(session, encoded_images, outputs)

  @classmethod
  def from_saved_model(cls, saved_model_dir):
    """Loads a SavedModel written by export_ssd.py (only its signature is used).

    Raises:
      FileNotFoundError: saved_model_dir holds no saved_model.pb.
      ValueError: the SavedModel has no 'serving_default' signature with encoded_images.
    """
    if not tf1.saved_model.contains_saved_model(saved_model_dir):
      raise FileNotFoundError('%s holds no saved_model.pb: pass the folder written by '
                              'export_ssd.py as --saved_model.' % saved_model_dir)
    graph = tf.Graph()
    session = tf1.Session(graph=graph)
    with graph.as_default():
      meta_graph = tf1.saved_model.loader.load(
          session, [tf1.saved_model.tag_constants.SERVING], saved_model_dir)
    signature = meta_graph.signature_def.get(export.SIGNATURE_KEY)
    if signature is None or export.INPUT_KEY not in signature.inputs:
      session.close()
      raise ValueError('%s has no %r signature taking %r: export it with export_ssd.py.'
                       % (saved_model_dir, export.SIGNATURE_KEY, export.INPUT_KEY))
    encoded_images = graph.get_tensor_by_name(signature.inputs[export.INPUT_KEY].name)
    outputs = {key: graph.get_tensor_by_name(info.name)
               for key, info in signature.outputs.items()}
    graph.finalize()
    return cls(session, encoded_images, outputs)

  @classmethod
  def create(cls, model_dir='', saved_model_dir='', checkpoint_path='', data_format=''):
    """from_saved_model when saved_model_dir is given, else from_model_dir (exactly one)."""
    if model_dir and saved_model_dir:
      raise ValueError('Give either --model_dir or --saved_model, not both.')
    if saved_model_dir:
      return cls.from_saved_model(saved_model_dir)
    if not model_dir:
      raise ValueError('Give --model_dir (a training folder) or --saved_model (an export).')
    return cls.from_model_dir(model_dir, checkpoint_path, data_format)

  def detect(self, encoded_images):
    """Detections for a list of encoded images (bytes).

    Returns:
      dict of numpy arrays, the keys and shapes of export.OUTPUT_KEYS (module docstring of
      net/export.py); class names are bytes.

    Raises:
      ValueError: an image could not be decoded (the message says which TF error).
    """
    try:
      return self._session.run(self._outputs, {self._encoded_images: list(encoded_images)})
    except tf.errors.InvalidArgumentError as error:
      raise ValueError('Could not decode the image: %s' % error.message.split('\n')[0]) from None

  def close(self):
    self._session.close()

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc_info):
    self.close()
