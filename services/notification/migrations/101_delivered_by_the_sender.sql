-- notification-service migration 101: notifications: delivered after the commit, by the sender
-- Applied once per database (common/include/saga/migrate.h); never edit a released one.
-- Rows of 100 were delivered inside their transaction: 'sent'. From now on the
-- handler records a row as 'pending' and the sender (sender.h) delivers it;
-- event_id is its NotificationSent's, chosen when recorded, as are the cause's ids.
-- The default stays 'sent': during a rolling upgrade an old instance still mails
-- inside its transaction and inserts without a status, and its rows must not be
-- sent again.
ALTER TABLE notifications
  ADD COLUMN status text NOT NULL DEFAULT 'sent'
    CHECK (status IN ('pending', 'sent', 'failed')),
  ADD COLUMN attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN last_error text,
  ADD COLUMN sent_at timestamptz,
  ADD COLUMN event_id text,
  ADD COLUMN cause_event_id text,
  ADD COLUMN correlation_id text,
  ADD COLUMN traceparent text;
UPDATE notifications SET sent_at = created_at;
CREATE INDEX notifications_pending ON notifications (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX notifications_failed ON notifications (created_at) WHERE status = 'failed';
