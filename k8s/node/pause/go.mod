module retailetl.local/pause

go 1.22
