"""lerobot's LeRobotDataset with state and action put into the embodiment's order (imports lerobot: load lazily)."""

from __future__ import annotations

from lerobot.datasets.lerobot_dataset import LeRobotDataset


class ByNameDataset(LeRobotDataset):
    """Items whose vector keys are reordered by `column_orders` ({key: vla.data.names.ColumnOrder})."""

    column_orders: dict = {}

    def __getitem__(self, idx: int) -> dict:
        item = super().__getitem__(idx)
        for key, order in self.column_orders.items():
            if key in item:
                item[key] = order.apply(item[key])
        return item
