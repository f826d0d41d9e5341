/* Header decoder: link layer -> encapsulations/tunnels -> innermost IP -> transport.
 * See decode.h for the contract. (Being written.) */
#include <string.h>
#include "decode.h"

void pc_decode(const uint8_t *p, uint32_t caplen, uint32_t linktype, pc_pkt *o)
{
    (void)p; (void)caplen; (void)linktype;
    memset(o, 0, sizeof(*o));
    o->vlan = o->vlan_inner = o->mpls = -1;
    o->status = PC_UNSUPPORTED_LINKTYPE;
}
