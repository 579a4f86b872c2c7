module github.com/soft-yt/${{ values.name }}/backend

go 1.22
