-- Orthanc -> AIWS routing for deploy/compose.yaml (mounted at /etc/orthanc/lua/route-to-aiws.lua,
-- listed in LuaScripts). Every instance stored in Orthanc is forwarded to AIWS, except the
-- results AIWS sends back: those come from AIWS's AE title, and forwarding them would make AIWS
-- re-open and reprocess the study it has just answered, again and again.
--
-- Per instance rather than OnStableStudy on purpose: AIWS's results land in the same study, so a
-- stable-study rule would fire again for every answered study. Orthanc groups consecutive
-- forwards to one modality into one job (one association), and AIWS assembles the study itself
-- (its quiet_seconds).
--
-- Keep AIWS_MODALITY equal to the DicomModalities entry, and AIWS_AET to [dicom] ae_title of
-- deploy/aiws.toml (tests/test_deploy.py checks both, and runs this script in a real Orthanc).

local AIWS_MODALITY = 'aiws'
local AIWS_AET = 'AIWS'

function OnStoredInstance(instanceId, tags, metadata, origin)
   if origin['RequestOrigin'] == 'Lua' then
      return  -- written by a Lua script: never routed again
   end
   if origin['RemoteAet'] == AIWS_AET then
      return  -- a result from AIWS
   end
   SendToModality(instanceId, AIWS_MODALITY)
end
