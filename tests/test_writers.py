"""The TensorBoard writer: real event files, each record framed and checksummed as TensorBoard reads them."""

from __future__ import annotations

import threading

from e2e.test_cli import event_scalars

from cockpit.writers import TensorboardWriter


def test_scalars_land_in_a_checked_event_file_without_writer_threads(tmp_path):
    threads = threading.active_count()
    writer = TensorboardWriter(tmp_path)
    writer.add_scalars({"train/loss": 0.5, "train/lr": 0.1}, 10)
    writer.add_scalars({"train/loss": 0.25, "train/lr": 0.1}, 20)
    assert threading.active_count() == threads, "the writer started a thread"
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    assert event_scalars(path) == {"train/loss": [(10, 0.5), (20, 0.25)],
                                   "train/lr": [(10, 0.10000000149011612), (20, 0.10000000149011612)]}


def test_a_written_event_reaches_the_file_within_flush_secs(tmp_path):
    writer = TensorboardWriter(tmp_path, flush_secs=0.0)  # TensorBoard, watching live, sees it at once
    writer.add_scalars({"train/loss": 1.0}, 1)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    assert event_scalars(path) == {"train/loss": [(1, 1.0)]}
    writer.close()
