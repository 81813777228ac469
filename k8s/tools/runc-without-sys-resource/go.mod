module retailetl.local/runc-without-sys-resource

go 1.22
