//! The reference evaluator (see issue 3 item 9).
