"""Learning tasks: what each robot's data is, the model, the loss and the validation metrics."""

from dinno_core.tasks.base import LocalData, Task, TensorData

__all__ = ["LocalData", "Task", "TensorData"]
