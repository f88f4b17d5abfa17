"""Bundle bytes: stores (folder, HTTP, S3), archives, safe extraction and the content-addressed cache."""
