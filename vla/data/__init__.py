"""Demonstration data: LeRobot v3.0 datasets (write, repair, validate, load), normalization and image transforms.

Modules: schema (contract as LeRobot features), names (state/action matched by feature name), writer (crash-safe
episodes), repair, stats (exact statistics; the writer's meta/norm_stats.json), normalize (Normalizer), dataset
(validate_dataset, open_dataset, TrainingDataset, collate), lerobot_view (LeRobotDataset read by name), transforms
(ImageAugConfig), convert_robocasa / convert_groot / convert_lerobot_v3 (upstream formats), synthetic (test data). Import the module you need;
this package imports nothing heavy.
"""
