"""Where journaled events become records: archive, finalise, tell the LMS, purge.

`archiver` copies each session's Redis journal into the PostgreSQL events table;
`finaliser` runs the rules engine over the archive once a session has ended and writes
the result and records (with revisions); `outbox` delivers what changed to the LMS;
`scheduler` ends sessions at their scheduled end plus `end_grace`; `retention` purges
expired events and records; `partitions` keeps the events table's month partitions.
"""
