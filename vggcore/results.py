"""What a run's result record says, by name: how a run ends (`STATUSES`) and the final metrics it reports
(`METRICS`), as `vggcore.train.loop.train` writes them and every reader (studies, decisions, reports) reads them."""

STATUSES = ("ok", "diverged", "failed")   # finished; the loss went non-finite; an error stopped it
# The final metrics of a finished run (`train`'s record["final"]); a study ranks by one of them.
METRICS = ("test_top1_error", "test_top5_error", "test_loss", "val_top1_error", "train_seconds")
