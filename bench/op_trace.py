"""Where a session run's time goes, per op type and per op, from one FULL_TRACE run.

Shared by bench/forward.py (--trace_batch_size) and bench/train_step.py (--trace).
"""

import collections

import tensorflow as tf

tf1 = tf.compat.v1


def trace_run(session, fetches, feed=None, top=12):
  """Runs fetches once with a full trace; ({op type: ms}, [(op name, ms)] slowest top).

  Grappler fuses a convolution with its bias and ReLU (oneDNN or not), and the trace names
  the fused node after its last op: a 'Relu' or 'BiasAdd' row is mostly convolution. Ops that
  run at the same time overlap, so the sum may exceed the run's wall time.
  """
  metadata = tf1.RunMetadata()
  session.run(fetches, feed, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE),
              run_metadata=metadata)
  op_types = {op.name: op.type for op in session.graph.get_operations()}
  by_type, by_name = collections.Counter(), collections.Counter()
  for device in metadata.step_stats.dev_stats:
    for node in device.node_stats:
      name = node.node_name.split(':')[0]
      by_type[op_types.get(name, name)] += node.all_end_rel_micros / 1e3
      by_name[name] += node.all_end_rel_micros / 1e3
  return dict(by_type.most_common()), by_name.most_common(top)


def print_trace(trace, title):
  """Prints trace_run's result: op types by share of the total, then the slowest ops."""
  by_type, slowest = trace
  total = sum(by_type.values())
  print('%s: %.1f ms of op time' % (title, total))
  print('%-34s %10s %7s' % ('op type', 'ms', 'share'))
  for op_type, ms in by_type.items():
    if ms >= 0.005 * total:
      print('%-34s %10.1f %6.1f%%' % (op_type, ms, 100 * ms / total))
  print('slowest ops:')
  for name, ms in slowest:
    print('  %-70s %8.1f ms' % (name[-70:], ms))


def summary_of(trace):
  """The JSON fields of a trace: ms by op type (rounded) and total."""
  by_type, _ = trace
  return {'trace_ms_by_op_type': {k: round(v, 1) for k, v in by_type.items()},
          'trace_ms_total': round(sum(by_type.values()), 1)}
