# The five cost-accounting dimensions (SAP Dimensions).
view: dim_dimension {
  sql_table_name: sap_b1.dim_dimension ;;

  dimension: dimension_code { primary_key: yes type: number sql: ${TABLE}.dimension_code ;; }
  dimension: dimension_name { sql: ${TABLE}.dimension_name ;; }
  dimension: is_active { type: yesno sql: ${TABLE}.is_active ;; }
  dimension: description { sql: ${TABLE}.description ;; }
}
