"""Medical mutual aid (医疗互助): plans as data, membership, claims with a member jury, and apportionment."""
