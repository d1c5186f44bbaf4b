"""Jobs: function calls that outlive a request (accepted with 202, run by the job runner actor, retried,
dead-lettered, their end delivered by signed webhooks)."""
