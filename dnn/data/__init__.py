"""Data pipelines: datasets, the DataLoader, and batch transforms on the device.

```python
from dnn.data import ArrayDataset, DataLoader, Compose, RandomCrop, RandomHorizontalFlip

augment = Compose([RandomCrop(28, padding=2), RandomHorizontalFlip()])
train = DataLoader(ArrayDataset(x, y), batch_size=128, shuffle=True, transform=augment, seed=0)
model.fit(train, epochs=10)
```
"""

from dnn.data.dataset import ArrayDataset, collate
from dnn.data.loader import DataLoader
from dnn.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Rescale,
    Transform,
)

__all__ = [
    "ArrayDataset", "Compose", "DataLoader", "Normalize", "RandomCrop", "RandomHorizontalFlip",
    "Rescale", "Transform", "collate",
]
