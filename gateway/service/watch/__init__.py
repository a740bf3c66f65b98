"""What a security team watches: metrics collected from the store at scrape time, alert
conditions evaluated in-process, and the data of the security console."""
