/* SPDX-License-Identifier: GPL-2.0-or-later */
/* flow_probe.bpf.c: bpf/flow.h made observable, for tests/root/test_flow.py.
 *
 * Parses the frame with flow_parse() and stores the return code and the whole struct flow
 * in flow_probe_out[0]; always XDP_PASS. Compiled with each of flow.h's knobs in turn.
 */
#include <uapi/linux/bpf.h>

#include "flow.h"

struct flow_probe_rec {
	__s32 rc;
	__u32 pad;
	struct flow fl;
};

BPF_ARRAY(flow_probe_out, struct flow_probe_rec, 1);

int flow_probe(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct flow_probe_rec rec = {};
	__u32 key = 0;

	rec.rc = flow_parse(data, data_end, &rec.fl);
	flow_probe_out.update(&key, &rec);
	return XDP_PASS;
}
