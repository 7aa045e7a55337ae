"""CSV imports of listings: the import lock, run history, reports, the pipeline, uploads, and the CSV format read
(`csv_reading`), checked row by row (`row_rules`) and written (`csv_writing`)."""
