"""Where flows come from besides capture files: Zeek logs (``zeek``)."""
