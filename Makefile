# The field's habit: make targets. Each one is ./run <target> (which installs what is missing
# first, idempotently, and prints what it changed on the system). Run as root on Debian 12.
.PHONY: demo test bench qemu bng qemu-bng setup remove-shim
demo test bench qemu bng qemu-bng setup:
	./run $@ $(ARGS)

# Undo the kernel-header shim tools/setup-host.sh may have made (see README.md, Set-up).
remove-shim:
	tools/setup-host.sh --remove-shim
