"""Single-service deploys: target, pipeline, rollout tracking, snapshots, lock, history, notices."""
