"""Jobs of every kind: submission, dry runs, approval, the runner and the job kinds."""
