INSERT INTO "EBB"."DEPLOYS" (deploy_id, project_name, project_version, deployed_at, deployed_by, summary)
SELECT ?, ?, ?, SYSDATE(), ?, PARSE_JSON(?)
-- binds: ["deploy-1","acme",3,"ci","{\"created\":1}"]
